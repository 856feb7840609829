# The compiled hot path (meshd/compiled.py): the id patchers write their bytes as C integers.

cimport cython

@cython.locals(i=Py_ssize_t)
cpdef void _patch_dubbo_id(bytearray frame, long long request_id)

@cython.locals(i=Py_ssize_t)
cpdef void _patch_bolt_id(bytearray frame, long long request_id)
