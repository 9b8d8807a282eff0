/**
 * The CSR flow (spec: Connection settings — certificate signing requests): an agent sends
 * `connection_settings_request.opamp.certificate_request`, the application's hook signs
 * it, and the server offers OpAMP connection settings carrying the certificate.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type AgentToServer, ConnectionSettingsOffersSchema } from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/index.js";
import type { AgentRecord } from "./agent-record.js";
import { desiredItem, storedDesired } from "./delivery.js";
import type { ResolvedServerOptions } from "./options.js";
import type { Part } from "./outbound.js";
import type { OfferTracker } from "./reply.js";
import type { ServerStore } from "./store.js";

/** What the core lends the CSR handler. */
export interface CsrHost extends OfferTracker {
  readonly options: ResolvedServerOptions;
  readonly store: ServerStore;
  persist(write: () => Promise<void>): Promise<void>;
}

/**
 * Runs the hook for a message carrying a CSR. Returns the connection-settings part to add
 * to the reply, `undefined` when the message has no CSR or no hook is configured.
 *
 * @throws OpampError `invalid_argument` when the hook refuses (the core answers BadRequest).
 */
export async function answerCertificateRequest(
  host: CsrHost,
  record: AgentRecord,
  message: AgentToServer,
  endpoint: string,
  principal: unknown,
): Promise<Part | undefined> {
  const csr = message.connectionSettingsRequest?.opamp?.certificateRequest?.csr;
  const hook = host.options.onCertificateRequest;
  if (csr === undefined || hook === undefined) return undefined;
  let settings: Awaited<ReturnType<typeof hook>>;
  try {
    settings = await hook({ csr, agent: record, principal });
  } catch (e) {
    throw new OpampError("invalid_argument", `certificate request refused: ${OpampError.from(e).message}`, {
      cause: e,
    });
  }
  if (settings === undefined) throw new OpampError("invalid_argument", "certificate request refused");
  const offers = create(ConnectionSettingsOffersSchema, {
    opamp: { destinationEndpoint: endpoint, ...settings },
  });
  offers.hash = new Uint8Array(
    await globalThis.crypto.subtle.digest("SHA-256", toBinary(ConnectionSettingsOffersSchema, offers)),
  );
  const item = desiredItem("connectionSettings", toBinary(ConnectionSettingsOffersSchema, offers), offers.hash);
  // Kept as desired state so it is offered again until the agent reports its hash.
  record.desired.connectionSettings = item;
  host.offered(record, "connectionSettings", item.hash);
  const id = record.id;
  const desired = storedDesired(record);
  host.persist(() => host.store.putDesired(id, desired));
  return item.part;
}
