from meshd.codec.base cimport FrameBuffer

cdef class BoltDecoder(FrameBuffer):
    cdef public object max_frame_size, verify_crc
