"""perphedge.scan: the spot/perp carry scanner (``perphedge scan``; see docs/scanner.md).

``run_scan`` fetches live funding through ccxt (``perphedge.venues.funding_snapshot``) and returns a
``ScanResult``; ``build_candidates`` and ``rank_candidates`` are the pure maths and ranking.
"""

from perphedge.scan.rank import Candidate, ScanSettings, build_candidates, rank_candidates
from perphedge.scan.scanner import ExchangeFailure, ScanResult, ScanWarning, run_scan, scan

__all__ = [
    "Candidate",
    "ExchangeFailure",
    "ScanResult",
    "ScanSettings",
    "ScanWarning",
    "build_candidates",
    "rank_candidates",
    "run_scan",
    "scan",
]
