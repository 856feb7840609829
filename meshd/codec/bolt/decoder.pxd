# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__; the frame
# splitter's header fields and positions as C integers.

cimport cython

from meshd.codec.base cimport FrameBuffer

cdef long long _u16(bytearray buf, Py_ssize_t p)

@cython.locals(value=cython.longlong)
cdef long long _u32(bytearray buf, Py_ssize_t p)

cdef class BoltDecoder(FrameBuffer):
    cdef public object max_frame_size, verify_crc

    @cython.locals(pos=Py_ssize_t, size=Py_ssize_t, end=Py_ssize_t, limit=cython.longlong, typ=cython.int,
                   cmd=cython.longlong, rid=cython.longlong, status=cython.longlong, timeout=cython.longlong,
                   clen=cython.longlong, hlen=cython.longlong, blen=cython.longlong, declared=cython.longlong,
                   buf=bytearray)
    cpdef list events(self)
