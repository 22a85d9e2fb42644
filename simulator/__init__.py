"""Realistic shop traffic with an exact ground truth.

Data path: :func:`simulator.generate.generate` turns a :class:`simulator.config.SimConfig`
into Kafka records (Avro/JSON bytes, explicit partitions, in send order);
:func:`simulator.produce.produce` sends them; :func:`simulator.truth.compute_truth`
recomputes every metric of ``docs/semantics.md`` from those same records, independently of
``streams/``.
"""
