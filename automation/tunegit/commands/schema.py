from __future__ import annotations

import argparse
import json

from tunegit.spec import plan, site


def main(args: argparse.Namespace) -> int:
    schema = plan.json_schema() if args.which == "plan" else site.json_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0
