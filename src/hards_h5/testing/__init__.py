"""A conformance suite for the HARDS contract, importable by any implementation.

Subclass :class:`HardsConformance` in a test module and provide the factories::

    from hards_h5.testing import HardsConformance

    class TestMyStore(HardsConformance):
        def create(self, path): return MyDatabase.create_database(path)
        def reopen(self, db, path): db.close(); return MyDatabase(path)

pytest then runs every contract test against ``MyDatabase``.  Behaviour an
implementation knowingly lacks is listed in :attr:`HardsConformance.known_failures`
(test name -> reason); those tests are marked as expected failures, so the suite
documents the differences instead of hiding them.
"""

from __future__ import annotations

from hards_h5.testing._conformance import HardsConformance

__all__ = ["HardsConformance"]
