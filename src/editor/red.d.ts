// What the editor's scripts find on the page: Node-RED's editor (RED) and jQuery ($, from @types/jquery),
// and in the broker's script the settings schema, which scripts/build.js writes there.

declare const RED: import('@node-red/editor-client').RED;

/** A tcpmq-broker's mode: src/settings/schema.ts's Mode. */
type Mode = import('../settings/schema').Mode;

/** src/settings/schema.ts's editorSchema(): every broker setting's type, default, range and modes. */
declare const SCHEMA: ReturnType<typeof import('../settings/schema').editorSchema>;
