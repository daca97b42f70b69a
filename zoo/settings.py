"""Recipe settings: a dict of commented defaults at the top of a recipe becomes its command line.

    DEFAULTS = dict(units=64, epochs=8, dropout=0.5, cell="lstm", wide=True, max_examples=None,
                    name=None)
    CHECKS = dict(units=positive, epochs=positive, dropout=fraction,
                  cell=choices("lstm", "gru", "rnn"), max_examples=positive, name=model_name)
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int},
                             checks=CHECKS)
    args = parser.parse_args()       # --units 32 --no-wide --max-examples 400 ...

Booleans become `--flag/--no-flag`; a `None` default takes the type named in
`optional_types` (str otherwise).

Every setting is validated once parsing is done, whether it came from the
command line or from `DEFAULTS`: a float setting must be finite (no `nan`,
no `inf`), and each entry of `checks` (one check or a tuple of them) must
hold. A setting left at `None` is not checked (`None` means "not set"). A
failed check exits with a usage error (status 2) that names the flag, the
requirement and the value received, before any data is read or any model is
built.
"""

import argparse
import math
import re


class Check:
    """A requirement on one setting: `test(value)` is true when the value is acceptable.

    Args:
        requirement: What the value must be, completing "--flag ..." (e.g.
            "must be > 0").
        test: Callable taking the parsed value, returning a bool.
    """

    def __init__(self, requirement, test):
        self.requirement = requirement
        self.test = test

    def problem(self, value):
        """The requirement `value` fails, or None when it passes."""
        try:
            passed = bool(self.test(value))
        except (TypeError, ValueError):
            passed = False
        return None if passed else self.requirement

    def __repr__(self):
        return f"Check({self.requirement!r})"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


positive = Check("must be > 0", lambda value: _is_number(value) and value > 0)
non_negative = Check("must be >= 0", lambda value: _is_number(value) and value >= 0)
fraction = Check("must be in [0, 1)", lambda value: _is_number(value) and 0 <= value < 1)
finite = Check("must be a finite number", lambda value: _is_number(value) and math.isfinite(value))


def _usable_directory(value):
    import os

    path = os.path.expanduser(str(value))
    if os.path.isdir(path):
        return True
    if os.path.exists(path) or os.path.islink(path):
        return False  # a file (or a dangling link) where a directory is wanted
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor must be a directory
        parent = os.path.dirname(parent)
    return os.path.isdir(parent)


#: A directory setting (`run_dir`, `output_dir`): an existing directory, or a path that can become one.
directory = Check("must be a directory or a path where one can be made (it names an existing file)",
                  _usable_directory)

#: Settings checked with `directory` unless a recipe's CHECKS say otherwise.
DIRECTORY_SETTINGS = ("run_dir", "output_dir")

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

#: A name usable as one directory of the hub: letters, digits, '.', '_', '-', not starting with
#: '.' or '-', no path separators, at most 128 characters.
model_name = Check(
    "must be a plain directory name (letters, digits, '.', '_' and '-', starting with a letter "
    "or digit, at most 128 characters)",
    lambda value: isinstance(value, str) and len(value) <= 128
    and _SAFE_NAME.fullmatch(value) is not None,
)


def choices(*allowed):
    """A check that the value is one of `allowed`."""
    listing = ", ".join(repr(value) for value in allowed)
    return Check(f"must be one of {listing}", lambda value: value in allowed)


def comma_list(*allowed, empty=False):
    """A check that the value is a comma-separated list of distinct names from `allowed`
    (`empty=True` also accepts "")."""
    listing = ", ".join(allowed)

    def holds(value):
        if not isinstance(value, str):
            return False
        names = [name.strip() for name in value.split(",")] if value.strip() else []
        return (bool(names) or empty) and len(set(names)) == len(names) and all(
            name in allowed for name in names)

    return Check(f"must be distinct names separated by commas, from: {listing}", holds)


def at_least(minimum):
    """A check that the value is a number >= `minimum`."""
    return Check(f"must be >= {minimum}", lambda value: _is_number(value) and value >= minimum)


def flag_name(key):
    """The command-line flag of setting `key`: `max_examples` -> `--max-examples`."""
    return "--" + key.replace("_", "-")


def setting_problems(values, defaults, checks=None):
    """Messages for every setting in `values` (a dict) that breaks its checks.

    Float settings (those whose default is a float) must be finite; each
    entry of `checks` (a `Check` or a tuple of them) must hold. `None`
    values are skipped.
    """
    checks = checks or {}
    unknown = sorted(set(checks) - set(defaults))
    if unknown:
        raise ValueError(f"checks name settings that have no default: {unknown}")
    problems = []
    for key, default in defaults.items():
        value = values.get(key)
        if value is None:
            continue
        rules = checks.get(key, directory if key in DIRECTORY_SETTINGS else ())
        rules = (rules,) if isinstance(rules, Check) else tuple(rules)
        if isinstance(default, float) or isinstance(value, float):
            rules = (finite,) + rules
        for rule in rules:
            requirement = rule.problem(value)
            if requirement:
                problems.append(f"{flag_name(key)} {requirement}, received {value!r}")
                break
    return problems


class SettingsParser(argparse.ArgumentParser):
    """An `ArgumentParser` that validates the parsed settings (see the module docstring)."""

    def __init__(self, *args, defaults=None, checks=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.setting_defaults = dict(defaults or {})
        self.setting_checks = dict(checks or {})
        setting_problems({}, self.setting_defaults, self.setting_checks)  # catch typos early

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        problems = setting_problems(vars(parsed), self.setting_defaults, self.setting_checks)
        if problems:
            self.error("; ".join(problems))
        return parsed, extras


def settings_parser(defaults, doc, optional_types=None, checks=None):
    """An argparse parser with one `--kebab-case` flag per entry of `defaults`.

    Args:
        defaults: Dict of setting name -> default value.
        doc: The recipe's docstring (its first paragraph is the description).
        optional_types: Dict of setting name -> type for settings whose
            default is None (str otherwise).
        checks: Dict of setting name -> `Check` (or tuple of checks) that
            every parsed value must pass, e.g. `positive`, `non_negative`,
            `fraction`, `choices(...)`, `model_name`.

    Returns:
        A `SettingsParser`; its `parse_args` exits with status 2 and a
        message naming each bad setting and its value.
    """
    optional_types = optional_types or {}
    description = (doc or "").strip().split("\n\n")[0]
    parser = SettingsParser(description=description, epilog=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            defaults=defaults, checks=checks)
    for key, value in defaults.items():
        flag = flag_name(key)
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


def recipe_command(script, argv=None):
    """The command line that reproduces a recipe run, for its card: ``python <script>`` and the
    arguments it was given (`argv`, default ``sys.argv[1:]``), less the directory settings
    (`DIRECTORY_SETTINGS`: where files went on this machine, not what was trained)."""
    import shlex
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {flag_name(key) for key in DIRECTORY_SETTINGS}
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = "=" not in arg
            continue
        kept.append(shlex.quote(arg))
    return " ".join(["python", script] + kept)
