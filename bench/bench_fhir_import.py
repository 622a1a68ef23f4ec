"""FHIR import throughput and peak memory (issue #5's numbers).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/healthcrm REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/bench_fhir_import.py [--patients 20] [--encounters 60] [--mb 50]

Works in its own database (DATABASE_URL's name + "_fhirbench"), created and migrated on first use;
each run imports into a fresh organization. Data: Synthea-shaped transaction bundles generated here
(integrations/fhir/synthetic.py: one patient with encounters, vitals with blood-pressure
components, labs, survey answers we skip, conditions, medications, immunizations, procedures, an
allergy and a care plan). Encryption and audit are on, as in production, and the import runs as
the application role under row-level security.

Printed: import resources/s (every entry handled: created or skipped), beside (a) parse-only
throughput of the same files with fhir.resources' R4B models and (b) a raw COPY of one equivalent
row per resource into PostgreSQL, as ratios; then the peak memory (max RSS) of a separate process
importing one bundle of about `--mb` MB, and of one NDJSON file of the same size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "healthcrm"
    return urlunsplit(parts._replace(path="/" + (name if name.endswith("_fhirbench") else f"{name}_fhirbench")))


def _manage(*args: str, owner: bool = False) -> None:
    env = dict(os.environ, DATABASE_LOGIN="owner" if owner else "app")
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def _setup() -> None:
    os.environ["DATABASE_URL"] = _bench_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/healthcrm")
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")


def _organization(label: str):  # type: ignore[no-untyped-def]
    from healthcrm.models import Organization

    slug = f"bench-{label}-{int(time.time() * 1000)}"
    return Organization.objects.create(name=slug, slug=slug, require_mfa=False)


def _import(organization, text: str):  # type: ignore[no-untyped-def]
    from healthcrm.tenancy import organization_context
    from integrations.fhir.importer import fhir_import_data

    def unit(fn):  # type: ignore[no-untyped-def]
        with organization_context(organization):
            fn()

    return fhir_import_data(text, source_system="bench", run_unit=unit)


def _write_file(kind: str, megabytes: int) -> tuple[Path, int, int]:
    """A synthetic file of about `megabytes` MB (one patient, thousands of encounters)."""
    from integrations.fhir.synthetic import synthea_bundle

    encounters = max(1, int(megabytes * 1024 * 1024 / 8900))
    bundle = synthea_bundle(999, encounters=encounters)
    if kind == "ndjson":
        text = "\n".join(json.dumps(e["resource"]) for e in bundle["entry"]) + "\n"
    else:
        text = json.dumps(bundle)
    path = Path(f"/tmp/healthcrm-bench-{kind}.json")  # noqa: S108 - a scratch file of synthetic data
    path.write_text(text)
    return path, len(text), len(bundle["entry"])


def _peak_kb() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _memory(path: Path) -> None:
    """Child process: import one file; print the peak memory before and after the import."""
    import django

    django.setup()
    baseline = _peak_kb()
    organization = _organization(path.stem)
    started = time.perf_counter()
    report = _import(organization, path.read_bytes())
    elapsed = time.perf_counter() - started
    peak = _peak_kb()
    print(json.dumps({"ok": report.ok, "seconds": elapsed, "baseline_kb": baseline, "peak_kb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20, help="bundles (one patient each)")
    parser.add_argument("--encounters", type=int, default=60, help="encounters per patient (about 10 resources each)")
    parser.add_argument("--mb", type=int, default=50, help="size of the file for the memory measurement (0: skip)")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _setup()
    if args.memory_child:
        _memory(args.memory_child)
        return
    _manage("db_bootstrap")
    _manage("migrate", "--noinput", owner=True)

    import django

    django.setup()
    from django.db import connection
    from fhir.resources.R4B import get_fhir_model_class

    from integrations.fhir.parsing import scan_bundle
    from integrations.fhir.synthetic import synthea_bundle

    texts = [json.dumps(synthea_bundle(seed, encounters=args.encounters)) for seed in range(args.patients)]
    total_bytes = sum(len(t) for t in texts)

    # (a) parse only: the same scan and R4B validation the importer does, nothing written.
    started = time.perf_counter()
    parsed = 0
    for text in texts:
        bundle = scan_bundle(text)
        for ref in bundle.entries:
            entry = bundle.entry(ref)
            get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
            parsed += 1
    parse_seconds = time.perf_counter() - started

    # The import: encryption, blind indexes, audit entries, links, RLS, one transaction per bundle.
    organization = _organization("import")
    started = time.perf_counter()
    handled = 0
    for text in texts:
        report = _import(organization, text)
        assert report.ok, report.as_text()
        handled += sum(sum(c.values()) for c in report.counts.values())
    import_seconds = time.perf_counter() - started
    created = report.total("created")  # noqa: F841 - last bundle, for a quick look when debugging

    # Importing the same files again: every resource found unchanged.
    started = time.perf_counter()
    for text in texts:
        _import(organization, text)
    reimport_seconds = time.perf_counter() - started

    # (b) the physical limit: one equivalent row per resource (ids, codes, a value, a time and the
    # resource's JSON as the payload) sent with COPY into an unindexed table.
    rows = io.StringIO()
    for text in texts:
        for entry in json.loads(text)["entry"]:
            r = entry["resource"]
            payload = json.dumps(r).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")
            rows.write(f"{organization.pk}\t{r['resourceType']}\t{r['id']}\t2024-01-01T00:00:00Z\t{payload}\n")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_copy (organization_id bigint, resource_type text, resource_id text, "
            "effective timestamptz, payload text)"
        )
        started = time.perf_counter()
        with cursor.copy("COPY bench_copy FROM STDIN") as copy:
            copy.write(rows.getvalue())
        copy_seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy")

    import_rate = handled / import_seconds
    parse_rate = parsed / parse_seconds
    copy_rate = parsed / copy_seconds
    print(
        f"machine: {os.cpu_count()} cores; {args.patients} Synthea-shaped bundles, {parsed} resources, "
        f"{total_bytes / 1e6:.1f} MB"
    )
    print(f"import (encrypted, audited, RLS): {import_rate:8.0f} resources/s  ({import_seconds:.2f} s)")
    print(
        f"re-import (all unchanged):        {handled / reimport_seconds:8.0f} resources/s  ({reimport_seconds:.2f} s)"
    )
    print(
        f"(a) parse only, R4B models:       {parse_rate:8.0f} resources/s  -> import is {import_rate / parse_rate:.2f}x"
    )
    print(
        f"(b) raw COPY of equivalent rows:  {copy_rate:8.0f} rows/s       -> import is {import_rate / copy_rate:.3f}x"
    )
    print("goal: >= 1,000 resources/s (HAPI FHIR ~277, Medplum ~96 per vCPU, published)")

    if args.mb:
        for kind in ("bundle", "ndjson"):
            path, size, count = _write_file(kind, args.mb)
            out = (
                subprocess.run(  # noqa: S603 - this script, fixed arguments
                    [sys.executable, __file__, "--memory-child", str(path)],
                    cwd=REPO,
                    env=dict(os.environ),
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            path.unlink()
            result = json.loads(out)
            result.update(bytes=size, resources=count)
            print(
                f"peak memory, {kind} of {result['bytes'] / 1e6:.1f} MB ({result['resources']} resources, "
                f"ok={result['ok']}, {result['resources'] / result['seconds']:.0f} resources/s): max RSS "
                f"{result['peak_kb'] / 1024:.0f} MB (process before import: {result['baseline_kb'] / 1024:.0f} MB); "
                "goal <= 500 MB"
            )


if __name__ == "__main__":
    main()
