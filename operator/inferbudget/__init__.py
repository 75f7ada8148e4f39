"""inferbudget: keeps model-serving cost within latency, memory and cost budgets on Kubernetes."""

__version__ = "0.1.0"
