"""Reads one or more `strata-bench --json` files of the same command and gives, per engine and
workload, the median over the runs (of ops/sec, p99 latency, peak RssAnon...). Shared by
`plot.py` and `summarize.py`; standard library only."""
import json
import statistics


class Runs:
    def __init__(self, paths):
        self.docs = [json.load(open(p)) for p in paths]
        first = self.docs[0]
        self.run = first["run"]
        self.settings = first.get("settings", {})
        self.machine = first.get("machine", {})
        self.engines = [e["engine"] for e in first["engines"]]
        self.workloads = [w["name"] for w in first["engines"][0]["workloads"]]

    def _values(self, engine, workload, get):
        out = []
        for doc in self.docs:
            for e in doc["engines"]:
                if e["engine"] != engine:
                    continue
                out.extend(get(w) for w in e["workloads"] if w["name"] == workload)
        return out

    def ops(self, engine, workload):
        """Median ops/sec (None if the engine did not run the workload)."""
        v = self._values(engine, workload, lambda w: w["ops_per_sec"])
        return statistics.median(v) if v else None

    def ops_all(self, engine, workload):
        """ops/sec of every run."""
        return self._values(engine, workload, lambda w: w["ops_per_sec"])

    def p99(self, engine, workload):
        v = self._values(engine, workload, lambda w: w["latency_us"]["p99"])
        return statistics.median(v) if v else None

    def engine_median(self, engine, key):
        """Median over runs of an engine-level field (peak_rss_anon_bytes, ...)."""
        v = [e[key] for doc in self.docs for e in doc["engines"]
             if e["engine"] == engine and e.get(key) is not None]
        return statistics.median(v) if v else None

    def engine_max(self, engine, key):
        v = [e[key] for doc in self.docs for e in doc["engines"]
             if e["engine"] == engine and e.get(key) is not None]
        return max(v) if v else None
