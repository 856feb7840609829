# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__; the frame
# splitter's header fields and positions as C integers.

cimport cython

from meshd.codec.base cimport FrameBuffer

cdef class DubboDecoder(FrameBuffer):
    cdef public object max_frame_size

    @cython.locals(pos=Py_ssize_t, size=Py_ssize_t, end=Py_ssize_t, i=Py_ssize_t, limit=cython.longlong,
                   magic=cython.int, flag=cython.int, status=cython.int, rid=cython.longlong,
                   length=cython.longlong, buf=bytearray)
    cpdef list events(self)
