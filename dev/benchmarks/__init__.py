"""linzoo's speed, measured side by side in one process (so machine noise cancels).

    python scripts/benchmark.py                                   # CPU sections
    python scripts/benchmark.py --sections gpu --device cuda      # the GPU section
    python scripts/benchmark.py --sections time_to_99 --threads 2  # time to 99%: peer, linzoo, reference loop
    python scripts/benchmark.py --tiny --data-root DIR --out /tmp/bench.json   # seconds: the smoke test

One module a section (``overhead``, ``linear``, ``data``, ``compile``, ``gpu``,
``generation``, ``augment``, ``time_to_99``), each with ``section(args) -> dict``; ``timing`` holds the paired timing
helpers, ``reference`` the one hand-written training loop every section compares
against, ``recipes`` the composed configs they train. ``run.main`` parses the command
line, runs the sections and writes the JSON. docs/benchmarks.md has the results.
"""
