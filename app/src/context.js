// What every page reads: the app's state (useApp) and the index API (api).
import { createContext, useContext } from 'react'

export const Ctx = createContext(null)
export const useApp = () => useContext(Ctx)

export async function api(path) {
  const response = await fetch(path)
  const body = await response.json()
  if (!response.ok) throw new Error(body?.error?.message || response.statusText)
  return body
}

export function fmtDate(seconds, lang) {
  if (!seconds) return ''
  return new Date(Number(seconds) * 1000).toLocaleDateString(lang === 'zh' ? 'zh-CN' : 'en-GB', {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
  })
}
