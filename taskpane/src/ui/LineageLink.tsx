/**
 * A link to a run's lineage record (GET /v1/runs/{id}). The record needs the access token, which a plain
 * link (a new tab, or the system browser Office opens links in) never sends: the click fetches it through
 * the pane's client, with the token, and shows it here. The href stays, naming the record.
 */
import { useState, type MouseEvent, type ReactNode } from "react";
import {
  Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Link, makeStyles, tokens,
} from "@fluentui/react-components";
import { ApiError } from "../api/http";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";

const useLocal = makeStyles({
  record: {
    margin: 0,
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
    fontFamily: tokens.fontFamilyMonospace,
    fontSize: tokens.fontSizeBase200,
    maxHeight: "60vh",
    overflowY: "auto",
  },
});

export function LineageLink({ runId, children }: { runId: string; children: ReactNode }) {
  const { api } = usePane();
  const local = useLocal();
  const [open, setOpen] = useState(false);
  const [record, setRecord] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const path = `/v1/runs/${encodeURIComponent(runId)}`;

  const show = (e: MouseEvent) => {
    e.preventDefault();
    setOpen(true);
    setRecord(null);
    setError(null);
    api.get<unknown>(path).then(
      (run) => setRecord(JSON.stringify(run, null, 2)),
      (err: unknown) => setError(err instanceof ApiError ? err : new ApiError("server", String(err))),
    );
  };

  return (
    <>
      <Link href={path} onClick={show}>{children}</Link>
      <Dialog open={open} onOpenChange={(_, data) => setOpen(data.open)}>
        <DialogSurface>
          <DialogBody>
            <DialogTitle>Lineage record</DialogTitle>
            <DialogContent>
              {error ? <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} />
                : <pre className={local.record} data-testid="lineage-record">{record ?? "Loading…"}</pre>}
            </DialogContent>
            <DialogActions>
              <Button appearance="secondary" onClick={() => setOpen(false)}>Close</Button>
            </DialogActions>
          </DialogBody>
        </DialogSurface>
      </Dialog>
    </>
  );
}
