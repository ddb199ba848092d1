import type { UserType } from "@chatrelay/protocol";

/** A chat message as the relay core and the chat log hold it. */
export interface ChatMessage {
  id: string;
  roomId: number;
  seq: number;
  senderId: number;
  nickname: string;
  userType: UserType;
  text: string;
  sentAt: Date;
}

/** A message before the chat log assigned its seq and commit time. */
export interface MessageDraft {
  id: string;
  roomId: number;
  senderId: number;
  nickname: string;
  userType: UserType;
  text: string;
  clientMsgId: string | undefined;
}

/** What appending a draft produced: the committed message, or the first one with the same client message id. */
export interface AppendResult {
  message: ChatMessage;
  duplicate: boolean;
}
