/**
 * The controller's import graph has no cycle. Every .ts file under controller/ is parsed (TypeScript's own
 * parser, so multi-line and `export … from` imports count), its relative imports are followed wherever they lead
 * (core/ included), and a depth-first search looks for a cycle:
 * - through runtime imports, in everything the controller reaches (a runtime cycle changes module start-up
 *   order: a class can be undefined where it is used);
 * - through any import, type-only included, among controller/ files (the layering rule: the loop wires its
 *   collaborators, and no collaborator imports the loop or one that imports it back).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const CONTROLLER = join(ROOT, "controller");

interface ImportEdge {
  readonly to: string;
  /** Erased by the compiler: `import type`, or every named binding marked `type`. */
  readonly typeOnly: boolean;
}

type Graph = ReadonlyMap<string, readonly ImportEdge[]>;

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFilesUnder(path);
    return name.endsWith(".ts") && !name.endsWith(".d.ts") ? [path] : [];
  });
}

function resolveRelative(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    try {
      if (candidate.endsWith(".ts") && statSync(candidate).isFile()) return candidate;
    } catch {
      // not this candidate
    }
  }
  return undefined;
}

function namedAllTypes(elements: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>): boolean {
  return elements.length > 0 && elements.every((e) => e.isTypeOnly);
}

/** The relative imports of one file, with whether each is type-only. */
function importsOf(file: string): { specifier: string; typeOnly: boolean }[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const found: { specifier: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            namedAllTypes(clause.namedBindings.elements)));
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const typeOnly =
        node.isTypeOnly ||
        (node.exportClause !== undefined &&
          ts.isNamedExports(node.exportClause) &&
          namedAllTypes(node.exportClause.elements));
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      found.push({ specifier: node.moduleReference.expression.text, typeOnly: node.isTypeOnly });
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === "require")) &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter((i) => i.specifier.startsWith("."));
}

/** The graph of relative imports reachable from `roots`. Unresolvable relative imports are reported. */
function importGraph(roots: readonly string[]): { graph: Graph; unresolved: string[] } {
  const graph = new Map<string, ImportEdge[]>();
  const unresolved: string[] = [];
  const queue = [...roots];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (graph.has(file)) continue;
    const edges: ImportEdge[] = [];
    for (const { specifier, typeOnly } of importsOf(file)) {
      const to = resolveRelative(file, specifier);
      if (!to) {
        // JSON and other non-TypeScript files hold no imports of their own
        if (!/\.(json|js|cjs|mjs)$/.test(specifier))
          unresolved.push(`${relative(ROOT, file)} → ${specifier}`);
        continue;
      }
      edges.push({ to, typeOnly });
      queue.push(to);
    }
    graph.set(file, edges);
  }
  return { graph, unresolved };
}

/** The first cycle a depth-first search meets (as a path that starts and ends on the same file), or undefined. */
function findCycle(graph: Graph, follow: (from: string, edge: ImportEdge) => boolean): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const dfs = (file: string): string[] | undefined => {
    state.set(file, "open");
    path.push(file);
    for (const edge of graph.get(file) ?? []) {
      if (!follow(file, edge)) continue;
      const seen = state.get(edge.to);
      if (seen === "open") return [...path.slice(path.indexOf(edge.to)), edge.to];
      if (seen === undefined) {
        const cycle = dfs(edge.to);
        if (cycle) return cycle;
      }
    }
    path.pop();
    state.set(file, "done");
    return undefined;
  };
  for (const file of [...graph.keys()].sort()) {
    if (state.has(file)) continue;
    const cycle = dfs(file);
    if (cycle) return cycle;
  }
  return undefined;
}

const inController = (file: string) => file.startsWith(`${CONTROLLER}/`);
const shown = (cycle: string[] | undefined) => cycle?.map((f) => relative(ROOT, f)).join(" → ");

describe("controller import graph", () => {
  const { graph, unresolved } = importGraph(tsFilesUnder(CONTROLLER));

  it("reads the imports it should (the check is not vacuous)", () => {
    expect(unresolved).toEqual([]);
    const targets = (file: string) => (graph.get(join(ROOT, file)) ?? []).map((e) => relative(ROOT, e.to));
    expect(targets("controller/controller.ts")).toEqual(
      expect.arrayContaining([
        "controller/provisioner.ts",
        "controller/lifecycle.ts",
        "controller/spend-book.ts",
      ]),
    );
    expect(targets("controller/providers/types.ts")).toContain("core/catalog.ts");
    expect([...graph.keys()].some((f) => f.startsWith(join(ROOT, "core")))).toBe(true);
  });

  it("finds a cycle when there is one", () => {
    const toy: Graph = new Map([
      ["a", [{ to: "b", typeOnly: false }]],
      ["b", [{ to: "c", typeOnly: true }]],
      ["c", [{ to: "a", typeOnly: false }]],
    ]);
    expect(findCycle(toy, () => true)).toEqual(["a", "b", "c", "a"]);
    expect(findCycle(toy, (_from, edge) => !edge.typeOnly)).toBeUndefined();
  });

  it("has no cycle through runtime imports, core/ included", () => {
    expect(shown(findCycle(graph, (_from, edge) => !edge.typeOnly))).toBeUndefined();
  });

  it("has no cycle among controller/ files, type-only imports included", () => {
    expect(
      shown(findCycle(graph, (from, edge) => inController(from) && inController(edge.to))),
    ).toBeUndefined();
  });

  it("no collaborator imports the loop (only the process entry does)", () => {
    const loop = join(CONTROLLER, "controller.ts");
    const importers = [...graph].filter(([, edges]) => edges.some((e) => e.to === loop)).map(([f]) => f);
    expect(importers.map((f) => relative(ROOT, f))).toEqual(["controller/main.ts"]);
  });
});
