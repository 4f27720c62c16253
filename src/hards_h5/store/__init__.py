"""The storage engine: one campaign file, its record logs, blobs and locks.

The only package that imports h5py.  It knows the on-disk format
(``docs/format.md``) and nothing of the HARDS objects built on it in
:mod:`hards_h5.api`.
"""
