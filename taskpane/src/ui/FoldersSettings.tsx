/**
 * Settings → Folders to index: the only folders Deskpilot reads documents from (GET/PUT /v1/index/roots).
 * Those IT set (`index_roots`, the Documents folder by default) are listed and cannot be removed here; the
 * user adds and removes their own by full path (a pane cannot open a folder picker on the computer). The
 * server checks each one (a folder, not a whole drive, not Deskpilot's own data) and says why it refuses.
 */
import { useCallback, useEffect, useState } from "react";
import { Button, Caption1, Field, Input, Spinner, Text } from "@fluentui/react-components";
import { ApiError } from "../api/http";
import type { IndexRoot, IndexRootsOut } from "../api/types";
import { addedRoots } from "../shared/roots";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";
import { useStyles } from "./styles";

const asApiError = (e: unknown) => (e instanceof ApiError ? e : new ApiError("server", String(e)));

export function FoldersSettings() {
  const { api } = usePane();
  const styles = useStyles();
  const [roots, setRoots] = useState<IndexRoot[] | null>(null);
  const [folder, setFolder] = useState("");
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const load = useCallback(() => {
    setError(null);
    api.get<IndexRootsOut>("/v1/index/roots").then((out) => setRoots(out.roots), (e: unknown) => setError(asApiError(e)));
  }, [api]);
  useEffect(load, [load]);

  const save = async (added: string[]) => {
    setSaving(true);
    setError(null);
    try {
      setRoots((await api.put<IndexRootsOut>("/v1/index/roots", { added })).roots);
      return true;
    } catch (e) {
      setError(asApiError(e));
      return false;
    } finally {
      setSaving(false);
    }
  };
  const add = async () => {
    const path = folder.trim();
    if (!path || roots === null) return;
    if (await save([...addedRoots(roots), path])) setFolder("");
  };

  return (
    <section className={styles.section} aria-labelledby="folders-title" data-testid="folders">
      <h2 id="folders-title" className={styles.sectionTitle}>Folders to index</h2>
      <Caption1 className={styles.muted}>Deskpilot reads documents only from these folders, to answer your questions.</Caption1>
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={roots === null ? load : undefined} />}
      {roots === null && !error && <Spinner size="tiny" label="Loading folders…" />}
      {roots?.map((root) => (
        <div key={`${root.source}:${root.path}`} className={styles.itemCard} data-testid="folder" data-source={root.source}>
          <Text className={styles.grow} style={{ wordBreak: "break-all" }}>{root.path}</Text>
          <Caption1 className={styles.muted}>
            {root.source === "settings" ? "Set by your IT department" : "Added by you"}
            {root.exists ? "" : " · not found on this computer"}
          </Caption1>
          {root.source === "added" && (
            <div>
              <Button size="small" disabled={saving} aria-label={`Remove ${root.path}`}
                onClick={() => void save(addedRoots(roots).filter((p) => p !== root.path))}>Remove</Button>
            </div>
          )}
        </div>
      ))}
      <form onSubmit={(e) => { e.preventDefault(); void add(); }} aria-label="Add a folder">
        <Field label="Add a folder" hint="Its full path, for example C:\Users\you\Projects or /home/you/Projects">
          <Input value={folder} disabled={saving || roots === null} data-testid="folder-input"
            onChange={(_, d) => setFolder(d.value)} />
        </Field>
        <div><Button type="submit" disabled={saving || roots === null || !folder.trim()}>Add folder</Button></div>
      </form>
    </section>
  );
}
