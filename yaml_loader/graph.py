"""Small graph helpers: cycle detection that names the loop, and a stable topological order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(nodes: Sequence[str], parents: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A list of nodes forming a cycle (in dependency order), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for parent in parents.get(node, ()):
            if state.get(parent) == 1:
                loop = stack[stack.index(parent) :]
                return list(reversed(loop))
            if parent not in state and (found := visit(parent)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in nodes:
        if node not in state and (found := visit(node)):
            return found
    return None


def topological_order(nodes: Sequence[str], parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Parents before children; ties keep the order the file lists them in."""
    done: set[str] = set()
    order: list[str] = []
    remaining = list(nodes)
    while remaining:
        for node in remaining:
            if all(p in done for p in parents.get(node, ())):
                order.append(node)
                done.add(node)
                remaining.remove(node)
                break
        else:  # pragma: no cover - find_cycle runs first
            raise ValueError("cycle")
    return order


def ancestors(node: str, parents: Mapping[str, Sequence[str]]) -> set[str]:
    """Every node ``node`` depends on, directly or not."""
    seen: set[str] = set()
    stack = list(parents.get(node, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(parents.get(current, ()))
    return seen


def drop_transitive_parents(parents: dict[str, list[str]]) -> None:
    """Keep only direct item sources: a parent that is already an ancestor of another parent
    adds no ordering and would make the satellite run twice for the same item path."""
    for node, direct in parents.items():
        redundant = {p for p in direct for q in direct if q != p and p in ancestors(q, parents)}
        parents[node] = [p for p in direct if p not in redundant]
