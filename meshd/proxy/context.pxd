cdef class GovernedExchange:
    pass
