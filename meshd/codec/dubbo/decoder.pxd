# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__.

from meshd.codec.base cimport FrameBuffer

cdef class DubboDecoder(FrameBuffer):
    cdef public object max_frame_size
