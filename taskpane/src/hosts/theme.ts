/** Office's theme colours for the pane (officeTheme), and a way to hear when they change. */

export function officeBackground(): string | undefined {
  try {
    return typeof Office === "undefined" ? undefined : Office.context?.officeTheme?.bodyBackgroundColor || undefined;
  } catch {
    return undefined; // officeTheme throws on hosts without it
  }
}

export function onOfficeThemeChanged(listener: () => void): () => void {
  try {
    const doc = typeof Office === "undefined" ? undefined : Office.context?.document;
    const type = (Office.EventType as unknown as Record<string, Office.EventType | undefined>)?.OfficeThemeChanged;
    if (!doc?.addHandlerAsync || !type) return () => undefined;
    doc.addHandlerAsync(type, listener);
    return () => doc.removeHandlerAsync(type, { handler: listener });
  } catch {
    return () => undefined;
  }
}
