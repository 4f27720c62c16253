"""Whole-file tools built on the API and the store: check, compact, recover, merge, migrate."""
