"""Which top-level folder of src/breastlab imports which (static, from ast): python3 scripts/folder_imports.py ."""
import ast, sys, pathlib, collections
root = pathlib.Path(sys.argv[1]) / "src" / "breastlab"
edges = collections.defaultdict(set)
for f in root.rglob("*.py"):
    rel = f.relative_to(root)
    src_pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    mod_parts = ["breastlab", *rel.with_suffix("").parts]
    if mod_parts[-1] == "__init__": mod_parts = mod_parts[:-1]; pkg = mod_parts
    else: pkg = mod_parts[:-1]
    for node in ast.walk(ast.parse(f.read_text())):
        names = []
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level: base = pkg[: len(pkg) - node.level + 1]; names = [".".join(base + ([node.module] if node.module else []))]
            else: names = [node.module or ""]
        for n in names:
            p = n.split(".")
            if p[0] == "breastlab" and len(p) > 1 and p[1] != src_pkg:
                edges[src_pkg].add(p[1])
for k in sorted(edges): print(f"{k:12s} -> {', '.join(sorted(edges[k]))}")
