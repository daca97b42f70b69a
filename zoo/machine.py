"""What machine this is, without importing TensorFlow: the CPU's model name, for results files and cards."""

import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, with its family and model numbers (a virtual machine may
    show only a generic name such as "AMD EPYC"); `platform.processor()` where there is no /proc/cpuinfo."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name
