"""The HARDS objects: :class:`H5Database`, :class:`H5Dataset`, :class:`H5Datapoint`.

They implement the ``hards`` API on top of :mod:`hards_h5.store` and never touch
HDF5 themselves (no module here imports h5py).
"""
