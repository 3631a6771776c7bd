"""Restore faces in photos with Panini-Net.

Placeholder: whole-photo inference (detect -> align -> restore -> paste back) is not built yet
(issue: "Restore faces in whole photos"). This script says so and exits non-zero.
"""
import sys


def main():
    sys.stderr.write('inference_panini.py is not implemented yet: whole-photo restoration is still being built.\n')
    return 2


if __name__ == '__main__':
    sys.exit(main())
