"""Shared foundations every stage uses: errors, image I/O, atomic writes, hashing, typed configs, the cache folder
and the one device and precision policy. Imports nothing else from fastnst."""
