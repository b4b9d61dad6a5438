// Who is who: the one place that turns a user id into a name to show, and finds people by
// what someone typed.
//
// Names come from the service: conversation members carry {user_id, username, display_name},
// and GET /v1/users/lookup answers the same fields for an exact email or username. The cache
// lives in memory for this tab only (the conversation list refills it at every start), so no
// other person's details are ever written to the browser's storage.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UNKNOWN = "Someone";

const names = new Map(); // user_id -> the name to show
const knownConversations = new Map(); // conversation id -> the conversation (its members are in `names`)
const pending = new Map(); // conversation id -> the GET in flight, shared by whoever waits for it

// Earlier versions kept everyone who logged in on this browser, emails included, in localStorage.
try {
  localStorage.removeItem("secureconnect.directory");
} catch {
  // storage refused (private mode): nothing was kept there either
}

/** Remember a person: {user_id, username, display_name} (a member, a look-up, the signed-in user). */
export function rememberPerson(person) {
  if (!person?.user_id) return;
  const name = (person.display_name || "").trim() || person.username;
  if (name) names.set(person.user_id, name);
}

/** Remember every member of a conversation as the API returned it. */
export function rememberConversation(conversation) {
  for (const member of conversation?.members || []) rememberPerson(member);
  if (conversation?.conversation_id) knownConversations.set(conversation.conversation_id, conversation);
}

/** The conversation as last read here ({conversation_id, type, title, members}), or undefined. */
export function conversationOf(conversationId) {
  return knownConversations.get(conversationId);
}

/** A group conversation's name to show: its title, else its other members' names. */
export function groupName(conversation, selfId) {
  if (!conversation || conversation.type !== "group") return "";
  const others = conversation.members.map((m) => m.user_id).filter((id) => id !== selfId);
  return conversation.title || others.map(nameOf).join(", ");
}

export function knowsConversation(conversationId) {
  return knownConversations.has(conversationId);
}

/** The name to show for a user id: display name, else username, else a generic label. */
export function nameOf(userId) {
  return names.get(userId) ?? UNKNOWN;
}

/** Forget everyone (logging out: the next person in this tab starts afresh). */
export function forgetPeople() {
  names.clear();
  knownConversations.clear();
}

/** Read one conversation to learn its members' names; resolves true when they are known.
 * Never rejects: a failure only leaves the generic label in place. */
export function learnConversation(api, conversationId) {
  if (!conversationId) return Promise.resolve(false);
  if (knownConversations.has(conversationId)) return Promise.resolve(true);
  if (!pending.has(conversationId)) {
    const request = api
      .conversation(conversationId)
      .then((conversation) => {
        rememberConversation(conversation);
        return true;
      })
      .catch(() => false)
      .finally(() => pending.delete(conversationId));
    pending.set(conversationId, request);
  }
  return pending.get(conversationId);
}

/** ``promise``'s value, or ``fallback`` once ``ms`` have passed (the promise goes on regardless). */
export function within(promise, ms, fallback) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The person someone typed: a user id as it is, else an exact email or username looked up with
 * GET /v1/users/lookup. Resolves {user_id, username?, display_name?}; rejects with an error whose
 * message is fit to show (nobody has it, too many look-ups, the service is unreachable). */
export async function findPerson(api, text) {
  const wanted = text.trim();
  if (UUID.test(wanted)) return { user_id: wanted.toLowerCase() };
  const nobody = () => new Error(`Nobody has the email address or username "${wanted}".`);
  if (wanted.length < 3) throw nobody(); // shorter than any username; the service would refuse it
  try {
    const person = await api.lookupUser(wanted);
    rememberPerson(person);
    return person;
  } catch (error) {
    // A query the service refuses (too long, say) cannot match anybody either.
    if (error.code === "NOT_FOUND" || error.code === "VALIDATION_ERROR") throw nobody();
    if (error.code === "RATE_LIMITED") {
      const wait = error.retryAfter ? `in ${error.retryAfter} s` : "in a minute";
      error.message = `Too many look-ups in a short time; try again ${wait}.`;
    }
    throw error;
  }
}
