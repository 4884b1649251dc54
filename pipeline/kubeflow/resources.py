"""CPU and memory requests and limits of a compiled Kubeflow step, where the open-source backend
reads them.

    resources={"*": {"cpu_request": "1", "memory_request": "2Gi"},
               "EmbeddingTrainer": {"cpu_limit": "8", "memory_limit": "16Gi"}}

Read from kubeflow/pipelines backend/src/v2 (2.0.5 to 2.17 and main): no step gets a request or
a limit unless its container spec has one; the driver turns the container spec's `resources`
into the pod's (`driver.initPodSpecPatch`, merged into the pod by Argo as `podSpecPatch`). It
reads `resourceCpuLimit`... (strings, from backend 2.4) and, where those are empty, the older
`cpuLimit`, `memoryLimit`, `cpuRequest`, `memoryRequest` (numbers: cores, and memory in units of
10^9 bytes, formatted with Go's `%v` then `G` appended, and parsed as a Kubernetes quantity).
The spec carries the older fields: every backend 2.x reads them (2.0 to 2.3 only them, and their
API servers refuse the newer fields at upload as unknown), and so does the kfp SDK 2.5.0 that
loads the spec. A value whose Go form is not a quantity (an exponent: under 1e-4 or from 1e6
cores or 10^9 bytes) or would not come back exact is refused here.
"""

import decimal
import re

KEYS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
ALL_STEPS = "*"
# Each key's container spec field and the unit the driver appends to its %v.
_FIELDS = {"cpu_request": ("cpuRequest", ""), "cpu_limit": ("cpuLimit", ""),
           "memory_request": ("memoryRequest", "G"), "memory_limit": ("memoryLimit", "G")}
# k8s.io/apimachinery's ParseQuantity: a signed number, then a suffix: binary SI, decimal SI or
# a decimal exponent (its splitRE, and the suffixes it knows).
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|"
                       r"P|E|[eE][+-]?[0-9]+)?")
_SCALE = {None: 1, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
          "Ei": 2 ** 60, "n": decimal.Decimal("1e-9"), "u": decimal.Decimal("1e-6"),
          "m": decimal.Decimal("1e-3"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
          "P": 10 ** 15, "E": 10 ** 18}


class ResourceError(ValueError):
    """A request or limit that Kubernetes or the backend's driver would refuse."""


def quantity(text):
    """The value of a Kubernetes quantity ("500m", "8Gi", "1.5"), as a Decimal.

    Raises:
      ResourceError: not a quantity, with ParseQuantity's rule.
    """
    match = _QUANTITY.fullmatch(str(text).strip())
    if not match:
        raise ResourceError(f"{text!r}: quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = decimal.Decimal(match.group(1)), match.group(2)
    if suffix and suffix[0] in "eE":
        return number.scaleb(int(suffix[1:]))
    return number * _SCALE[suffix]


def go_float(number):
    """A float64 as Go's %v writes it (strconv 'g', shortest: an exponent below 1e-4 and from
    1e21... but from exponent 6 on for the shortest form, as fmt does)."""
    text = repr(float(number))
    digits = decimal.Decimal(text)
    exponent = digits.adjusted()
    if exponent < -4 or exponent >= 6:
        mantissa, _, power = f"{digits.normalize():E}".partition("E")
        sign = "-" if power.startswith("-") else "+"
        return f"{mantissa.lower()}e{sign}{power.lstrip('+-').zfill(2)}"
    formatted = format(digits, "f")
    return formatted[:-2] if formatted.endswith(".0") else formatted


def container_resources(step, values):
    """The container spec's `resources` for a step's {key: quantity text}.

    Raises:
      ResourceError: an unknown key, a value that is not a quantity, a request over its limit,
        or a value the driver would not read back exactly.
    """
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ResourceError(f"step {step}: unknown resource {', '.join(unknown)} (known: "
                            f"{', '.join(KEYS)})")
    amounts = {key: quantity(value) for key, value in values.items() if value is not None}
    for kind in ("cpu", "memory"):
        request, limit = amounts.get(f"{kind}_request"), amounts.get(f"{kind}_limit")
        if request is not None and limit is not None and request > limit:
            raise ResourceError(f"step {step}: {kind} request {values[f'{kind}_request']} is "
                                f"over its limit {values[f'{kind}_limit']} (Kubernetes refuses "
                                f"the pod: must be less than or equal to {kind} limit)")
    fields = {}
    for key, amount in amounts.items():
        field, unit = _FIELDS[key]
        if amount <= 0:
            raise ResourceError(f"step {step}: {key} {values[key]} is not positive")
        number = float(amount / (10 ** 9) if unit else amount)
        text = go_float(number)
        if "e" in text or quantity(text + unit) != amount:
            raise ResourceError(f"step {step}: {key} {values[key]}: the backend's driver reads "
                                f"it as {text}{unit}, which is not that quantity; give it in "
                                f"other units")
        fields[field] = number
    return fields


def pod_resources(container_spec_resources):
    """The pod's {"requests": {...}, "limits": {...}} as the driver writes them: each number of
    the container spec formatted with %v (and "G" for memory), a string field as it is.

    Raises:
      ResourceError: what ParseQuantity refuses, as the driver fails the task.
    """
    pod = {"requests": {}, "limits": {}}
    for key, (field, unit) in _FIELDS.items():
        kind, which = key.split("_")
        new_field = "resource" + field[0].upper() + field[1:]
        value = container_spec_resources.get(new_field) or (
            go_float(container_spec_resources[field]) + unit
            if container_spec_resources.get(field) else None)
        if value is None:
            continue
        try:
            quantity(value)
        except ResourceError as e:
            raise ResourceError(f"failed to init podSpecPatch: {e}") from None
        pod["requests" if which == "request" else "limits"][kind] = value
    return pod


def apply(spec, resources):
    """Writes resources ({step or "*": {key: quantity}}) into spec's containers, over what the
    step's TFX platform_config set. Returns the steps changed.

    Raises:
      ResourceError: a step the spec does not have, or a bad value.
    """
    tasks = spec["root"]["dag"]["tasks"]
    unknown = sorted(set(resources) - set(tasks) - {ALL_STEPS})
    if unknown:
        raise ResourceError(f"resources for steps the pipeline lacks: {', '.join(unknown)} (its "
                            f"steps: {', '.join(sorted(tasks))}; {ALL_STEPS!r}: every step)")
    changed = []
    for task in sorted(tasks):
        values = {**resources.get(ALL_STEPS, {}), **resources.get(task, {})}
        if not values:
            continue
        component = spec["components"][tasks[task]["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            continue  # An importer: no pod of its own.
        executor["container"].setdefault("resources", {}).update(
            container_resources(task, values))
        changed.append(task)
    return changed
