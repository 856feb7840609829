cdef class FrameBuffer:
    cdef public object buf, pos, eof, discard, error
