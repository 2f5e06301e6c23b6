"""Results: design points, the Pareto front, mapping files and summaries of an exploration."""
