# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__.

cdef class FrameBuffer:
    cdef public object buf, pos, eof, discard, error
