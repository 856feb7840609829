cdef class Timer:
    cdef public object callback, slot
