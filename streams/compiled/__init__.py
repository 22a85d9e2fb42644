"""The compiled core (issue #16): the Rust crate in native/ behind the processor interface.

``config.py`` turns the Python configuration into the JSON the crate reads;
``processor.py`` is :class:`CompiledProcessor`, a drop-in for
``streams.processor.PartitionProcessor`` that the setting ``FUNNEL_CORE=compiled``
selects (``streams/runtime.py``).
"""
