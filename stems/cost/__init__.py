"""The analytic cost model: price one layer under one intra-layer mapping on one hardware."""

from stems.cost.mapping import Mapping
from stems.cost.model import Cost, CostTable, LevelTraffic, price, price_batch

__all__ = ["Cost", "CostTable", "LevelTraffic", "Mapping", "price", "price_batch"]
