"""Keeping a collection in step with its folder (``ingest --prune``): what a run adds, replaces,
renames and removes (pure: the inputs' hashes and the collection's documents in, a plan out).

A collection holds one document per content (chunk ids come from the content's hash, and a
byte-identical copy is skipped as a copy), so a file's content tells where it was before:

- **added**: a path the collection does not hold, with content it does not hold;
- **replaced**: a path it holds, with other content (the run deletes the old points as it
  stores the new);
- **renamed**: content it holds under a path that is no longer among the inputs (or under
  another path than the input that has it), now at an input's path: its points get that path,
  with no OCR and no embedding;
- **removed**: a document whose content no input has and whose path is no longer an input (or
  held what a path had before content was renamed to it): deleted once the run has read
  everything else (``--prune``). A content some input has is never removed, nor the old version
  of a file the run reads (the run replaces it; a file that fails to read keeps it);
- **unchanged**: the same path and content (a copy of content stored under another input's
  path counts here: the run skips it as a copy).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..store.documents import StoredDocument

HASH_CHUNK = 1 << 20  # bytes read at a time: a large scan PDF is not held whole to hash it


@dataclass
class SyncPlan:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    renamed: list[tuple[StoredDocument, str]] = field(default_factory=list)  # (as stored, its new path)
    removed: list[StoredDocument] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "replaced": len(self.replaced), "renamed": len(self.renamed),
                "removed": len(self.removed), "unchanged": len(self.unchanged)}


def plan_sync(inputs: dict[str, str], stored: Iterable[StoredDocument]) -> SyncPlan:
    """The plan for ``inputs`` (each path as it will be stored -> its content's sha256) against
    the documents ``stored``. Every stored document is kept, renamed, removed, or left to the run
    (an old version at a path it reads); every input is added, replaced, renamed to, or unchanged. A content that some input has is never removed:
    its points move to that input's path (to the path that already holds it, when one does:
    what a rename cut short by a kill left under two paths comes together again)."""
    stored = list(stored)
    kept = [d for d in stored if inputs.get(d.file_path) == d.sha256]
    target: dict[str, str] = {}  # content -> the input path its points belong under
    for path in sorted(inputs, reverse=True):  # the first path in order wins
        target[inputs[path]] = path
    target.update({d.sha256: d.file_path for d in kept})  # a path that holds it already wins
    plan = SyncPlan()
    left = []
    for document in stored:
        if inputs.get(document.file_path) == document.sha256:  # kept (a test, not a search of ``kept``)
            continue
        destination = target.get(document.sha256)
        if destination is not None:
            plan.renamed.append((document, destination))
        else:  # its content is in no input
            left.append(document)
    targets = {path for _, path in plan.renamed}
    for document in left:
        # Gone from the inputs, or what a path held before content was renamed to it (the run
        # skips that file: its content is stored). An old version at a path the run reads is the
        # run's to replace (and stays if the file cannot be read: a failure prunes nothing).
        if document.file_path not in inputs or document.file_path in targets:
            plan.removed.append(document)
    held = {d.sha256 for d in stored}
    held_here = {(d.file_path, d.sha256) for d in kept}
    stored_paths = {d.file_path for d in stored}
    for path in sorted(inputs):
        sha256 = inputs[path]
        if path in targets:
            continue  # listed with the document renamed to it
        if (path, sha256) in held_here or (sha256 in held and target[sha256] != path):  # the same, or a copy
            plan.unchanged.append(path)
        elif path in stored_paths:
            plan.replaced.append(path)
        else:
            plan.added.append(path)
    return plan


def plan_for(client, collection: str, files: list[str], names: dict[str, str] | None = None) -> SyncPlan:
    """``plan_sync`` for the files a run will read (hashed here) against the collection as it is.
    A file that cannot be read to hash it counts as present with unknown content: its document
    is never removed for a read error (the run reports the error)."""
    from ..store.documents import list_documents

    inputs = {}
    for path in files:
        known_as = (names or {}).get(path, path)
        try:
            inputs[known_as] = file_sha256(path)
        except OSError:
            inputs[known_as] = ""
    return plan_sync(inputs, list_documents(client, collection))


def blocks_prune(problem_path: str) -> bool:
    """Whether an input ``collect_files`` could not take (its problem's path) must stop a prune:
    a missing path or a folder that cannot be listed would make its files look deleted. A
    symlinked folder not followed, or a broken symlink, is the folder as it is: no reason."""
    return not os.path.islink(problem_path)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["SyncPlan", "blocks_prune", "file_sha256", "plan_for", "plan_sync"]
