"""The shared vocabulary at the bottom of crmsync: what every layer names the same way.

Error codes and their remediation (``errors``), alert codes and their sentences
(``alerts``), the enums of records, channels and protocols (``types``), address
normalisation (``addresses``) and the tracking token's format (``tokens``).

Must never import another crmsync package, the ORM, or do I/O: everything else may import
this, so anything here that reached upwards would be a cycle.
"""
