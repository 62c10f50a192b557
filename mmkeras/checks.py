"""What a config key or a modality option accepts, in one place: each check is a pair
`(fn(value) -> bool, "what is expected")`, and `require` raises the one error text that the YAML
config (`config.SCHEMA`), the modality specs (their dataclass fields), pretrained encoders
(`pretrained.ENCODER_CHECKS`) and the fusion layers (their `OPTIONS`) all give:

>>> require("training.epochs", "ten", integer(1))
Traceback (most recent call last):
...
ValueError: Config key 'training.epochs': expected an integer >= 1. Received: 'ten'
"""


def require(key, value, check, subject="Config key"):
    """Raises ValueError naming the dotted `key` when `value` fails `check`; `subject` says what
    the key is ("Config key", or e.g. "AttentionFusion argument" for a layer built in Python)."""
    accepts, expected = check
    if not accepts(value):
        raise ValueError(f"{subject} {key!r}: expected {expected}. Received: {value!r}")


def reject_unknown(keys, known, prefix="", owner=""):
    """Raises ValueError naming the first of `keys` not in `known` (as `prefix` + key), and whose
    keys they are (`owner`, e.g. "the attention fusion"), with the keys it takes."""
    unknown = sorted(set(keys) - set(known))
    if unknown:
        whose = f" for {owner}" if owner else ""
        raise ValueError(f"Unknown config key '{prefix}{unknown[0]}'{whose}. Expected some of {sorted(known)}.")


def require_table(values, table, prefix="", owner="", subject="Config key"):
    """Checks a dict of options against `table` (name → check): every key known, every value
    accepted; errors name the key as `prefix` + name."""
    reject_unknown(values, table, prefix, owner)
    for name, value in values.items():
        require(prefix + name, value, table[name], subject)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum):
    return (lambda value: _is_int(value) and value >= minimum), f"an integer >= {minimum}"


def number(low, high=None, high_open=True, low_open=False):
    def accepts(value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return ((value > low if low_open else value >= low)
                and (high is None or (value < high if high_open else value <= high)))
    bound = "" if high is None else (f", < {high}" if high_open else f", <= {high}")
    return accepts, f"a number {'>' if low_open else '>='} {low}{bound}"


def positive():
    return (lambda value: number(0.0)[0](value) and value > 0), "a number > 0"


def optional(check):
    """`check`, or null."""
    return (lambda value: value is None or check[0](value)), f"{check[1]} or null"


def value_range(positive=False, high=None):
    """[low, high] of numbers."""
    def accepts(value):
        numbers = isinstance(value, list) and len(value) == 2 and all(number(0.0)[0](v) for v in value)
        return (numbers and value[0] <= value[1] and (not positive or value[0] > 0)
                and (high is None or value[1] < high))
    return accepts, "[low, high] with 0 " + ("<" if positive else "<=") + " low <= high" + (f" < {high}" if high else "")


def boolean():
    return (lambda value: isinstance(value, bool)), "true or false"


def choice(*choices):
    return (lambda value: value in choices), f"one of {list(choices)}"


def text():
    return (lambda value: isinstance(value, str)), "a string"


def mapping():
    return (lambda value: isinstance(value, dict)), "a mapping"


def non_empty_list(item, what):
    """A non-empty list whose every item passes `item` (fn(value) -> bool)."""
    return (lambda value: isinstance(value, list) and bool(value) and all(item(v) for v in value)), what


def sequence_of(item, what):
    """A list (or tuple), possibly empty, whose every item passes `item`."""
    return (lambda value: isinstance(value, (list, tuple)) and all(item(v) for v in value)), what


def pool_sizes():
    """Pooling after Conv1D layers: one size for every layer, or a list with a size per layer."""
    def accepts(value):
        if isinstance(value, (list, tuple)):
            return bool(value) and all(_is_int(v) and v >= 1 for v in value)
        return _is_int(value) and value >= 1
    return accepts, "an integer >= 1 (after every Conv1D layer) or a list of them (one per Conv1D layer)"


def for_field(field):
    """The check of a spec dataclass field, from its annotation (a `dropout` is a rate below 1):
    int → an integer >= 1, float → a number >= 0, tuple → integers >= 1 (layer widths), list →
    column names; a field's own `metadata={"check": ...}` instead where it says one; null where
    the default is null or the field says `metadata={"nullable": True}`."""
    if "check" in field.metadata:
        check = field.metadata["check"]
    elif field.name == "dropout":
        check = number(0, 1)
    else:
        check = {
            int: integer(1),
            float: number(0.0),
            bool: boolean(),
            str: text(),
            dict: mapping(),
            list: sequence_of(lambda v: isinstance(v, str) and bool(v), "a list of column names"),
            tuple: sequence_of(lambda v: _is_int(v) and v >= 1, "a list of integers >= 1"),
        }.get(field.type, ((lambda value: True), "anything"))
    if field.default is None or field.metadata.get("nullable"):
        check = optional(check)
    return check
