/** Settings for this pane, saved on this computer as soon as they change; then the server's automations. */
import { Button, Caption1, Field, Input, Select, Switch, Textarea } from "@fluentui/react-components";
import { DEFAULT_PREFS, LENGTHS, THEMES, TONES, type Prefs } from "../shared/prefs";
import { AutomationsSettings } from "./AutomationsSettings";
import { usePane } from "./context";
import { useStyles } from "./styles";

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

export function SettingsView() {
  const { prefs, setPrefs } = usePane();
  const styles = useStyles();
  const set = <K extends keyof Prefs>(key: K, value: Prefs[K]) => setPrefs({ ...prefs, [key]: value });
  return (
    <>
      <form className={styles.section} onSubmit={(e) => e.preventDefault()} aria-label="Settings">
        <Field label="Summary length" hint="Sentences in a summary">
          <Select value={String(prefs.sentences)} onChange={(_, d) => set("sentences", Number(d.value))}>
            {Array.from({ length: 10 }, (_, i) => i + 1).map((n) => <option key={n} value={n}>{n}</option>)}
          </Select>
        </Field>
        <div className={styles.fieldGrid}>
          <Field label="Reply tone">
            <Select value={prefs.tone} onChange={(_, d) => set("tone", d.value as Prefs["tone"])}>
              {TONES.map((t) => <option key={t} value={t}>{cap(t)}</option>)}
            </Select>
          </Field>
          <Field label="Reply length">
            <Select value={prefs.length} onChange={(_, d) => set("length", d.value as Prefs["length"])}>
              {LENGTHS.map((l) => <option key={l} value={l}>{cap(l)}</option>)}
            </Select>
          </Field>
        </div>
        <Field label="Signature" hint="Added to drafted replies">
          <Textarea value={prefs.signature} maxLength={200} onChange={(_, d) => set("signature", d.value)} />
        </Field>
        <Field label="Your name for reviews" hint="Recorded with your review decisions and approvals">
          <Input value={prefs.reviewer} maxLength={100} onChange={(_, d) => set("reviewer", d.value)} />
        </Field>
        <Field label="Theme">
          <Select value={prefs.theme} onChange={(_, d) => set("theme", d.value as Prefs["theme"])}>
            {THEMES.map((t) => <option key={t} value={t}>{t === "office" ? "Follow Office" : cap(t)}</option>)}
          </Select>
        </Field>
        <Switch checked={prefs.warmUp} onChange={(_, d) => set("warmUp", d.checked)}
          label="Read the open message ahead of time, so summaries start at once" />
        <Caption1 className={styles.muted}>Settings stay on this computer.</Caption1>
        <div><Button onClick={() => setPrefs(DEFAULT_PREFS)}>Reset to defaults</Button></div>
      </form>
      <AutomationsSettings />
    </>
  );
}
