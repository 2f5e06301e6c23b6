"""Search: CP-SAT models of mapping choices, all solved through `stems.search.solver.solve`."""
