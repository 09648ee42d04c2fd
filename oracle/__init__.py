"""The voicemarket oracle: Celery workers that serve on-chain synthesis requests exactly once.

Data flows one way: ``SynthesisRequested`` (chain) -> :mod:`oracle.listener` (confirmed, checkpointed
in Redis) -> a Celery task per request (:mod:`oracle.app`, logic in :mod:`oracle.serve`) -> synth ->
the store -> :mod:`oracle.submitter` (``fulfilBatch`` / ``fail``, nonces from Redis, at most once).

Operators run ``python -m oracle run`` and ``python -m oracle status``; see docs/oracle.md.
"""
