"""The operation library: built-in operations and the registry plug-ins add theirs to."""

from operations.base import Operation, OperationContext, OperationParams, Resources
from operations.registry import all_operations, get_operation, operation

__all__ = [
    "Operation",
    "OperationContext",
    "OperationParams",
    "Resources",
    "all_operations",
    "get_operation",
    "operation",
]
