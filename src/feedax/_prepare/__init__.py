"""Offline corpus preparation on Apache Beam (``feedax.prepare``)."""
