/** Settings for this pane, saved on this computer as soon as they change; then the server's folders to
 * index, its models (read-only) and automations. */
import { useEffect, useRef } from "react";
import { Button, Caption1, Field, Input, Select, Switch, Textarea } from "@fluentui/react-components";
import { ADDRESS_MAX, NAME_MAX, addressProblem, nameProblem, personLabel } from "../shared/identity";
import { DEFAULT_PREFS, LENGTHS, THEMES, TONES, type Prefs } from "../shared/prefs";
import { AutomationsSettings } from "./AutomationsSettings";
import { FoldersSettings } from "./FoldersSettings";
import { ModelsSettings } from "./ModelsSettings";
import { usePane } from "./context";
import { IDENTITY_FOCUS } from "./IdentityNotice";
import { useStyles } from "./styles";

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

/**
 * Who the user is, recorded with approvals, review decisions and policy changes. Outlook says (its
 * signed-in user, shown here); Word does not, so there the user enters a name and an email address.
 */
function IdentityFields() {
  const { prefs, setPrefs, identity, focus } = usePane();
  const styles = useStyles();
  const nameInput = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (focus !== IDENTITY_FOCUS) return;
    nameInput.current?.scrollIntoView?.({ block: "center" });
    nameInput.current?.focus();
  }, [focus]);

  if (identity?.source === "office") {
    return (
      <Field label="You" hint="Recorded with your approvals, review decisions and changes to automations">
        <Caption1 data-testid="identity">Signed in to Outlook as {personLabel(identity.person)}.</Caption1>
      </Field>
    );
  }
  // Say what is wrong once something was typed, not on an empty form.
  const started = Boolean(prefs.name.trim() || prefs.address.trim());
  const nameError = started ? nameProblem(prefs.name) : null;
  const addressError = started ? addressProblem(prefs.address) : null;
  return (
    <>
      <Field label="Your name" validationMessage={nameError ?? undefined} validationState={nameError ? "error" : "none"}
        hint="Recorded with your approvals, review decisions and changes to automations">
        <Input ref={nameInput} value={prefs.name} maxLength={NAME_MAX} autoComplete="name"
          onChange={(_, d) => setPrefs({ ...prefs, name: d.value })} />
      </Field>
      <Field label="Your email" validationMessage={addressError ?? undefined} validationState={addressError ? "error" : "none"}>
        <Input type="email" value={prefs.address} maxLength={ADDRESS_MAX} autoComplete="email"
          onChange={(_, d) => setPrefs({ ...prefs, address: d.value })} />
      </Field>
      {identity && <Caption1 className={styles.muted} data-testid="identity">Deskpilot records you as {personLabel(identity.person)}.</Caption1>}
    </>
  );
}

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
        <IdentityFields />
        <Field label="Theme">
          <Select value={prefs.theme} onChange={(_, d) => set("theme", d.value as Prefs["theme"])}>
            {THEMES.map((t) => <option key={t} value={t}>{t === "office" ? "Follow Office" : cap(t)}</option>)}
          </Select>
        </Field>
        <Switch checked={prefs.warmUp} onChange={(_, d) => set("warmUp", d.checked)}
          label="Read the open message ahead of time, so summaries start at once" />
        <Caption1 className={styles.muted}>Settings stay on this computer.</Caption1>
        {/* Reset keeps who the user is: it is not a preference, and approvals need it. */}
        <div><Button onClick={() => setPrefs({ ...DEFAULT_PREFS, name: prefs.name, address: prefs.address })}>Reset to defaults</Button></div>
      </form>
      <FoldersSettings />
      <ModelsSettings />
      <AutomationsSettings />
    </>
  );
}
