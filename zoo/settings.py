"""Recipe settings: a dict of commented defaults at the top of a recipe becomes its command line.

    DEFAULTS = dict(units=64, epochs=8, wide=True, max_examples=None)
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int})
    args = parser.parse_args()       # --units 32 --no-wide --max-examples 400 ...

Booleans become `--flag/--no-flag`; a `None` default takes the type named in
`optional_types` (str otherwise).
"""

import argparse


def settings_parser(defaults, doc, optional_types=None):
    """An argparse parser with one `--kebab-case` flag per entry of `defaults`."""
    optional_types = optional_types or {}
    description = (doc or "").strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(description=description, epilog=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for key, value in defaults.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            kind = type(value) if value is not None else optional_types.get(key, str)
            parser.add_argument(flag, type=kind, default=value)
    return parser


def require(parser, condition, message):
    """Exit with a usage error (status 2) naming the bad setting when `condition` is false."""
    if not condition:
        parser.error(message)
