from meshd.codec.base cimport FrameBuffer

cdef class DubboDecoder(FrameBuffer):
    cdef public object max_frame_size
