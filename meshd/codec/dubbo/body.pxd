# The compiled hot path (meshd/compiled.py): the raw attachment reader's positions as C integers, its
# frame a bytearray (indexed without Python int objects).

cimport cython

@cython.locals(b=cython.Py_ssize_t, q=cython.Py_ssize_t)
cdef Py_ssize_t _t_end(bytearray frame, Py_ssize_t p, Py_ssize_t end)

@cython.locals(b=cython.Py_ssize_t)
cdef _t_value(bytearray frame, Py_ssize_t p, Py_ssize_t q)

@cython.locals(p=cython.Py_ssize_t, last=cython.Py_ssize_t, v=cython.Py_ssize_t, q=cython.Py_ssize_t,
               value_end=cython.Py_ssize_t, b=cython.Py_ssize_t, buf=bytearray)
cpdef trailing_attachment(frame, key)
