"""What the ``key: value`` benchmarks print and save: one aligned line per figure, and the same dict as JSON."""
import json


def print_results(results, json_path=None):
    """Print ``results`` one aligned ``key  value`` line each (floats to 3 decimals); with ``json_path`` also write
    them there as JSON, atomically (``panininet.atomic.write_text_atomic``).

    Args:
        results (dict): Figure name -> value (JSON-serialisable).
        json_path (str | None): Where to write the JSON. Default: None (print only).
    """
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f'{key:<{width}}  {value:.3f}' if isinstance(value, float) else f'{key:<{width}}  {value}')
    if json_path:
        from panininet.atomic import write_text_atomic
        write_text_atomic(json_path, json.dumps(results, indent=2))
