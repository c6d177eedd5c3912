#!/usr/bin/env python3
"""Reads a Prometheus textfile the way node_exporter's collector would and prints every sample
as `name{label=value,...} value` (labels sorted), one per line. Fails (exit 1, one line) when the
file breaks the text exposition format: checked line by line against the grammar, then parsed
with the official client library's parser (python3-prometheus-client) when it is installed."""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)"
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*,?)?\}})? ({VALUE})( -?[0-9]+)?$")
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def strict(text):
    if text and not text.endswith("\n"):
        sys.exit("the file does not end with a newline")
    typed, helped, seen, samples = set(), set(), set(), []
    for n, line in enumerate(text.splitlines(), 1):
        if m := HELP.match(line):
            if m[1] in helped:
                sys.exit(f"line {n}: a second HELP for {m[1]}")
            helped.add(m[1])
        elif m := TYPE.match(line):
            if m[1] in typed or m[1] in seen:
                sys.exit(f"line {n}: TYPE for {m[1]} twice or after its samples")
            typed.add(m[1])
        elif line.startswith("#"):
            continue
        elif m := SAMPLE.match(line):
            key = (m[1], m[2] or "")
            if key in seen:
                sys.exit(f"line {n}: sample {m[1]}{m[2] or ''} twice")
            seen.add(key)
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m[2] or ""))
            samples.append((m[1], labels, float(m[3])))
        else:
            sys.exit(f"line {n} is not in the exposition format: {line!r}")
    return samples


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    samples = strict(text)
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families is None:
        print("# parsed with the grammar only (python3-prometheus-client is not installed)",
              file=sys.stderr)
        for name, labels, value in samples:
            pairs = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            print(f"{name}{{{pairs}}} {value!r} gauge")
        return
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print(f"{s.name}{{{labels}}} {s.value!r} {family.type}")


main()
