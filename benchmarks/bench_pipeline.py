"""The step graph's overlap: wall time of the ``transcribe+frames`` pipeline against the
sum of its steps' durations (issue 12.3).

extract_frames runs beside extract_audio → transcribe, so the run's wall time should be
below the sum of the three steps. Each repetition is a fresh run in a temporary data
directory, with the model loaded once (shared resources) so that its load is not counted.
Prints one line per run and the medians; ``--json`` writes them.

    PYTHONPATH=src python benchmarks/bench_pipeline.py [MEDIA] --runs 3 --every 1s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media" / "speech_a_video.mp4"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", nargs="?", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", default="1s", help="extract_frames interval (default 1s)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        os.environ["INFOMUX_DATA_DIR"] = tmp
        from infomux import pipeline
        from infomux.job import parse_time

        config: dict[str, Any] = {"every": args.every, "streams": 1, "threads": args.threads}
        resources: dict[str, Any] = {}
        rows = []
        try:
            for i in range(args.runs + 1):  # the first run warms up (model load, caches)
                job, run_dir = pipeline.create_run(
                    args.media, pipeline="transcribe+frames", config=config
                )
                started = time.perf_counter()
                pipeline.execute(job, run_dir, resources=resources)
                wall = time.perf_counter() - started
                steps = {r.name: r.duration_seconds or 0.0 for r in job.steps}
                spans = [
                    (parse_time(r.started_at or ""), parse_time(r.completed_at or ""))
                    for r in job.steps
                ]
                span = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds()
                row = {"wall": wall, "span": span, "sum": sum(steps.values()), "steps": steps}
                if i == 0:
                    print(f"warm-up: wall {wall:.3f} s", file=sys.stderr)
                    continue
                rows.append(row)
                parts = ", ".join(f"{k} {v:.3f}" for k, v in steps.items())
                print(
                    f"run {i}: wall {wall:.3f} s, steps' span {span:.3f} s, "
                    f"sum of steps {row['sum']:.3f} s ({parts})"
                )
        finally:
            pipeline.close_resources(resources)
    wall = statistics.median(r["wall"] for r in rows)
    total = statistics.median(r["sum"] for r in rows)
    print(
        f"median: pipeline wall {wall:.3f} s vs sum of steps {total:.3f} s "
        f"({wall / total:.2f}x) on {args.media.name}, every={args.every}"
    )
    if args.json:
        args.json.write_text(json.dumps({"media": str(args.media), "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
