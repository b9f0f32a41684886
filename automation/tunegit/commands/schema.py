from __future__ import annotations

import argparse
import json

from tunegit.spec import plan, retry, site

SCHEMAS = {"plan": plan.json_schema, "site": site.json_schema, "retry": retry.json_schema}


def main(args: argparse.Namespace) -> int:
    schema = SCHEMAS[args.which]()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0
