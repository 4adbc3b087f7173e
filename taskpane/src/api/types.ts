/**
 * Friendly names for the wire types generated from the server's OpenAPI document (schema.gen.ts), which
 * `npm run gen:api` writes from the server the pane ships in: a type is never written here by hand.
 */
import type { components, SseEvents } from "./schema.gen";

type Schemas = components["schemas"];

export type EmailIn = Schemas["EmailIn"];
export type SummarizeRequest = Schemas["SummarizeRequest"];
export type DraftReplyRequest = Schemas["DraftReplyRequest"];
export type Tone = NonNullable<DraftReplyRequest["tone"]>;
export type ReplyLength = NonNullable<DraftReplyRequest["length"]>;
export type Client = NonNullable<SummarizeRequest["client"]>;
export type Health = Schemas["Health"];
export type ModelsOut = Schemas["ModelsOut"];
export type ModelInfo = Schemas["ModelInfo"];
export type ProfileOut = Schemas["ProfileOut"];
export type RouteOut = Schemas["RouteOut"];
export type UsageReport = Schemas["UsageReport"];
export type UsageLine = Schemas["UsageLine"];
export type Limit = Schemas["Limit"];
export type RunOut = Schemas["RunOut"];
export type ErrorBody = Schemas["ErrorBody"];
export type AskRequest = Schemas["AskRequest"];
export type RewriteRequest = Schemas["RewriteRequest"];
export type Source = Schemas["SourceOut"];
export type IndexStatus = Schemas["IndexStatus"];
export type IndexRoot = Schemas["IndexRoot"];
export type IndexRootsOut = Schemas["IndexRootsOut"];
export type SkippedFile = Schemas["SkippedFile"];
export type SyncStatus = Schemas["SyncStatus"];
export type DriftReport = Schemas["DriftReport"];
export type DriftSignal = Schemas["DriftSignalOut"];
export type ScopeOut = Schemas["ScopeOut"];
export type SkippedItemOut = Schemas["SkippedItemOut"];
export type ExtractRequest = Schemas["ExtractRequest"];
export type ClassifyRequest = Schemas["ClassifyRequest"];
export type ClassifyOut = Schemas["ClassifyOut"];
export type FieldOut = Schemas["FieldOut"];
export type Review = Schemas["ReviewOut"];
export type ReviewsOut = Schemas["ReviewsOut"];
export type ReviewDecision = Schemas["ReviewDecisionIn"];
export type Person = Schemas["Person"];
export type ActionRecord = Schemas["ActionRecord"];
export type ActionStatus = ActionRecord["status"];
export type ActionsOut = Schemas["ActionsOut"];
export type ActionOut = Schemas["ActionOut"];
export type ActionDecision = Schemas["DecisionIn"];
export type ActionKind = Schemas["ActionIn"]["kind"];
export type WorkflowRecord = Schemas["WorkflowRecord"];
export type WorkflowStatus = WorkflowRecord["status"];
export type WorkflowIn = Schemas["WorkflowIn"];
export type WorkflowOut = Schemas["WorkflowOut"];
export type Automation = Schemas["Automation"];
export type ApprovalMode = NonNullable<Automation["approval"]>[string];
export type AutomationsOut = Schemas["AutomationsOut"];
export type AutomationOut = Schemas["AutomationOut"];
export type AutomationPut = Schemas["AutomationPut"];
export type MetaEvent = SseEvents["meta"];
export type TokenEvent = SseEvents["token"];
export type DoneEvent = SseEvents["done"];
export type ErrorEvent = SseEvents["error"];
export type SourcesEvent = SseEvents["sources"];
export type ProgressEvent = SseEvents["progress"];
export type ResultEvent = SseEvents["result"];
export type GroundedEvent = SseEvents["grounded"];
export type { SseEvents };
