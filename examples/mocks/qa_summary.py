#!/usr/bin/env python3
"""Summarise a campaign's mock catalogs for quality assurance: the QA step after the array.

Walks the catalogs directory (e.g. campaigns/v1.0_name/catalogs, laid out as
rNNNN/mock_zZ.ZZZ.hdf5), reads each catalog's attributes and row count with h5py, and
writes into the QA directory:
  summary.json  counts per redshift, file sizes, row counts, outliers, unreadable and
                misplaced files (machine-readable, stable key order)
  summary.txt   the same for people
Hidden files (flow's temporary outputs start with '.') are skipped.

An outlier is a catalog whose row count or file size lies more than --threshold robust
standard deviations (1.4826 x median absolute deviation, at least 1% of the median) from
the median of its redshift. A misplaced catalog has a realization or redshift attribute
that disagrees with its rNNNN directory or mock_zZ file name.

Exit status: 0 once the summary is written (even when it lists problems), 1 with --strict
when it lists any outlier, unreadable or misplaced file, 2 on bad arguments.
"""

import argparse
import json
import os
import re
import statistics
import sys

import h5py

CATALOG_SUFFIXES = (".hdf5", ".h5")
ROWS_DATASET = "galaxies/pos"
REALIZATION_DIR = re.compile(r"^r(\d+)$")
REDSHIFT_NAME = re.compile(r"^mock_z(\d+(?:\.\d+)?)\.(?:hdf5|h5)$")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", required=True, help="directory holding the catalogs")
    parser.add_argument("--qa", required=True, help="directory to write summary.json and summary.txt into")
    parser.add_argument("--threshold", type=float, default=5.0, help="outlier threshold in robust sigmas (default 5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the summary lists problems")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.catalogs):
        parser.error(f"--catalogs {args.catalogs!r} is not a directory")
    if not args.threshold > 0:
        parser.error("--threshold must be positive")
    return args


def find_catalogs(root):
    """Catalog paths under root, sorted, hidden files and directories skipped."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.endswith(CATALOG_SUFFIXES):
                found.append(os.path.join(directory, name))
    return found


def text_attribute(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_catalog(path):
    """(record, error): what QA needs from one catalog, or why it cannot be read."""
    record = {"file": path, "size_bytes": os.path.getsize(path)}
    try:
        with h5py.File(path, "r") as catalog:
            if ROWS_DATASET not in catalog:
                return None, f"dataset {ROWS_DATASET} is missing"
            record["rows"] = int(catalog[ROWS_DATASET].shape[0])
            attributes = catalog.attrs
            record["realization"] = int(attributes["realization"]) if "realization" in attributes else None
            if "redshift_label" in attributes:
                record["redshift"] = text_attribute(attributes["redshift_label"])
            elif "redshift" in attributes:
                record["redshift"] = f"{float(attributes['redshift']):.3f}"
            else:
                record["redshift"] = None
    except (OSError, KeyError, ValueError, IndexError) as error:
        return None, f"{type(error).__name__}: {error}"
    return record, None


def placement_problems(record, root):
    """Disagreements between a catalog's attributes and where it lies."""
    problems = []
    relative = os.path.relpath(record["file"], root)
    parts = relative.split(os.sep)
    directory = REALIZATION_DIR.match(parts[-2]) if len(parts) >= 2 else None
    if directory and record["realization"] is not None and int(directory.group(1)) != record["realization"]:
        problems.append(f"realization attribute {record['realization']} but directory {parts[-2]}")
    name = REDSHIFT_NAME.match(parts[-1])
    if name and record["redshift"] is not None:
        try:
            if float(name.group(1)) != float(record["redshift"]):
                problems.append(f"redshift attribute {record['redshift']} but file name {parts[-1]}")
        except ValueError:
            problems.append(f"redshift attribute {record['redshift']!r} is not a number")
    if record["realization"] is None:
        problems.append("realization attribute is missing")
    if record["redshift"] is None:
        problems.append("redshift attribute is missing")
    return problems


def robust_outliers(records, metric, threshold):
    """Records whose metric lies more than threshold robust sigmas from the group median."""
    if len(records) < 3:
        return []
    values = [r[metric] for r in records]
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    sigma = max(1.4826 * mad, 0.01 * abs(median), 1e-12)
    outliers = []
    for record in records:
        deviation = (record[metric] - median) / sigma
        if abs(deviation) > threshold:
            outliers.append({
                "file": record["file"],
                "redshift": record["redshift"],
                "metric": metric,
                "value": record[metric],
                "median": median,
                "robust_sigmas": round(deviation, 2),
            })
    return outliers


def describe(values):
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "total": sum(values),
    }


def summarise(root, threshold):
    records, unreadable, misplaced = [], [], []
    for path in find_catalogs(root):
        record, error = read_catalog(path)
        if error is not None:
            unreadable.append({"file": path, "error": error})
            continue
        records.append(record)
        for problem in placement_problems(record, root):
            misplaced.append({"file": path, "problem": problem})

    by_redshift = {}
    for record in records:
        by_redshift.setdefault(record["redshift"] or "unknown", []).append(record)

    per_redshift, outliers = {}, []
    for label in sorted(by_redshift, key=lambda z: (z == "unknown", float(z) if z != "unknown" else 0.0)):
        group = by_redshift[label]
        per_redshift[label] = {
            "files": len(group),
            "realizations": len({r["realization"] for r in group}),
            "rows": describe([r["rows"] for r in group]),
            "size_bytes": describe([r["size_bytes"] for r in group]),
        }
        outliers += robust_outliers(group, "rows", threshold)
        outliers += robust_outliers(group, "size_bytes", threshold)

    return {
        "catalogs_dir": root,
        "files": len(records) + len(unreadable),
        "readable_files": len(records),
        "realizations": len({r["realization"] for r in records if r["realization"] is not None}),
        "total_bytes": sum(r["size_bytes"] for r in records),
        "total_rows": sum(r["rows"] for r in records),
        "outlier_threshold_sigmas": threshold,
        "per_redshift": per_redshift,
        "outliers": outliers,
        "unreadable": unreadable,
        "misplaced": misplaced,
    }


def render_text(summary):
    lines = [
        f"QA summary of {summary['catalogs_dir']}",
        f"files: {summary['files']} ({summary['readable_files']} readable), "
        f"realizations: {summary['realizations']}, rows: {summary['total_rows']}, bytes: {summary['total_bytes']}",
        "",
        f"{'redshift':>10} {'files':>7} {'rows min':>10} {'rows median':>12} {'rows max':>10} {'size median':>12}",
    ]
    for label, group in summary["per_redshift"].items():
        lines.append(
            f"{label:>10} {group['files']:>7} {group['rows']['min']:>10} {group['rows']['median']:>12} "
            f"{group['rows']['max']:>10} {group['size_bytes']['median']:>12}"
        )
    for title, key, field in (
        ("outliers", "outliers", None),
        ("unreadable", "unreadable", "error"),
        ("misplaced", "misplaced", "problem"),
    ):
        lines.append("")
        lines.append(f"{title}: {len(summary[key])}")
        for item in summary[key]:
            if field is None:
                detail = (f"{item['metric']} {item['value']} vs median {item['median']} "
                          f"({item['robust_sigmas']} sigmas, z={item['redshift']})")
            else:
                detail = item[field]
            lines.append(f"  {item['file']}: {detail}")
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    summary = summarise(args.catalogs, args.threshold)
    os.makedirs(args.qa, exist_ok=True)
    write_atomically(os.path.join(args.qa, "summary.json"), json.dumps(summary, indent=2) + "\n")
    text = render_text(summary)
    write_atomically(os.path.join(args.qa, "summary.txt"), text)
    sys.stdout.write(text)
    problems = len(summary["outliers"]) + len(summary["unreadable"]) + len(summary["misplaced"])
    return 1 if args.strict and problems else 0


if __name__ == "__main__":
    sys.exit(main())
