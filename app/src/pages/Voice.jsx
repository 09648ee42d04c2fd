import { useMemo, useState } from 'react'
import { keccak256, stringToBytes } from 'viem'
import { formatAmount, read, short } from '../chain.js'
import { Loading, PreviewPlayer, TxState, useApi, useTx } from '../components.jsx'
import { fmtDate, useApp } from '../context.js'
import { LANGUAGES, Status } from './Browse.jsx'

// RFC 8785 canonical JSON (keys sorted by UTF-16 code units, ES number forms): the bytes whose
// keccak256 is the offer's on-chain policyHash.
export function canonical(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
    .join(',')}}`
}

const ACTION_WORDS = {
  en: {
    textToSpeech: 'make speech from text',
    commercialize: 'use it commercially',
    distribute: 'distribute the audio',
    broadcast: 'broadcast it',
    derive: 'make derived works',
    modify: 'modify the audio',
    reproduce: 'reproduce it',
    sublicense: 'sublicense it',
  },
  zh: {
    textToSpeech: '用文本生成语音',
    commercialize: '商业使用',
    distribute: '分发音频',
    broadcast: '广播',
    derive: '制作衍生作品',
    modify: '修改音频',
    reproduce: '复制',
    sublicense: '转授权',
  },
}

function actionName(action) {
  const id = typeof action === 'string' ? action : action?.['rdf:value']?.['@id'] || ''
  return id.split(':').pop()
}

// The offer's ODRL document in plain words (what it permits, forbids, where, for what, duties).
export function policyWords(policy, lang, t) {
  const words = ACTION_WORDS[lang] || ACTION_WORDS.en
  const permissions = policy.permission || []
  const name = (p) => words[actionName(p.action)] || actionName(p.action)
  const permits = permissions.map(name)
  const prohibits = (policy.prohibition || []).map(name)
  const constraints = permissions[0]?.constraint || []
  const find = (key) => constraints.find((c) => c.leftOperand === key)
  const count = find('count')
  const spatial = find('spatial')
  const purpose = find('purpose')
  const attribution = (permissions[0]?.duty || []).some((d) => d.action === 'attribute')
  const purposes = purpose?.rightOperand.map((p) => p['@id'].split('/').pop()).join(', ')
  return [
    [t('offer.permits'), permits.join(', ') || t('offer.nothing')],
    [t('offer.prohibits'), prohibits.join(', ') || t('offer.nothing')],
    ...(count ? [['', t('offer.uses', { count: count.rightOperand })]] : []),
    ['', spatial ? t('offer.territories', { list: spatial.rightOperand.join(', ') }) : t('offer.anywhere')],
    ['', purpose ? t('offer.purposes', { list: purposes }) : t('offer.anyPurpose')],
    ['', attribution ? t('offer.attribution') : t('offer.noAttribution')],
    ['', policy['vm:transferable'] ? t('offer.transferable') : t('offer.notTransferable')],
  ]
}

// An ODRL document in plain words, as a definition list.
export function Terms({ policy }) {
  const { t, lang } = useApp()
  return (
    <dl className="terms">
      {policyWords(policy, lang, t).map(([k, v], i) => (
        <div key={i}>
          {k && <dt>{k}</dt>}
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  )
}

export function periodWords(seconds, lang) {
  const days = Number(seconds) / 86400
  if (Number.isInteger(days)) return lang === 'zh' ? `${days} 天` : `${days} day${days === 1 ? '' : 's'}`
  return `${seconds} s`
}

export function priceWords(offer, assets, t, lang) {
  const price = formatAmount(offer.price, offer.asset, assets)
  if (offer.tier === 'subscription') return t('offer.perPeriod', { price, period: periodWords(offer.period, lang) })
  if (offer.tier === 'pay-per-use' && offer.pack_size) {
    const pack = formatAmount(BigInt(offer.price) * BigInt(offer.pack_size), offer.asset, assets)
    return t('offer.pack', { price, size: offer.pack_size, pack })
  }
  if (offer.tier === 'pay-per-use') return t('offer.perUse', { price })
  return price
}

// What buying costs (LicenseManager._licenseFor): maxPrice is exactly this, never more.
export function costOf(offer, quantity) {
  const price = BigInt(offer.price)
  const q = BigInt(quantity)
  if (offer.tier === 'subscription') return price * q
  if (offer.tier === 'pay-per-use') return offer.pack_size ? price * BigInt(offer.pack_size) * q : 0n
  return price
}

export const busy = (tx) => Boolean(tx && ['simulating', 'signing', 'pending'].includes(tx.stage))

function Offer({ offer, onBought }) {
  const { t, lang, assets, canSend, chain } = useApp()
  const [quantity, setQuantity] = useState(1)
  const [tx, run] = useTx()
  const hashOk = useMemo(
    () => Boolean(offer.policy) && keccak256(stringToBytes(canonical(offer.policy))) === offer.policy_hash.toLowerCase(),
    [offer],
  )
  const multiple = offer.tier === 'subscription' || (offer.tier === 'pay-per-use' && offer.pack_size)
  const cost = costOf(offer, quantity)
  const amount = formatAmount(cost, offer.asset, assets)
  const erc20 = BigInt(offer.asset) !== 0n
  const buy = async () => {
    const steps = []
    const manager = chain.config.deployment.licenses
    if (erc20 && cost > 0n) {
      const allowance = await read(chain, 'erc20', 'allowance', [chain.wallet.account.address, manager], offer.asset)
      if (allowance < cost) {
        const label = t('tx.approving', { amount })
        steps.push({ role: 'erc20', address: offer.asset, functionName: 'approve', args: [manager, cost], label })
      }
    }
    const args = [BigInt(offer.offer_id), cost, BigInt(quantity)]
    steps.push({ role: 'licenses', functionName: 'buy', args, value: erc20 ? 0n : cost })
    if (await run(steps)) onBought()
  }
  let summary = t('offer.total', { amount })
  if (offer.tier === 'pay-per-use' && !offer.pack_size)
    summary = t('offer.payPerUseFree', { price: formatAmount(offer.price, offer.asset, assets) })
  else if (erc20) summary = t('offer.approve', { amount })
  return (
    <li className="offer" data-testid="offer" data-tier={offer.tier} data-offer={offer.offer_id}>
      <h3>
        {t(`tier.${offer.tier}`)} — <span data-testid="offer-price">{priceWords(offer, assets, t, lang)}</span>
      </h3>
      {offer.policy ? (
        <Terms policy={offer.policy} />
      ) : (
        <p className="note">{t('offer.noDocument')}</p>
      )}
      {offer.max_licenses ? (
        <p className="note">{t('offer.maxLicenses', { count: offer.max_licenses, sold: offer.sold })}</p>
      ) : null}
      <p className={hashOk ? 'ok' : 'error'} data-testid="policy-hash" data-ok={hashOk ? '1' : '0'}>
        {hashOk ? t('offer.hashOk') : t('offer.hashBad')} <code>{offer.policy_hash.slice(0, 18)}…</code>
      </p>
      {canSend ? (
        <div className="buy">
          {multiple ? (
            <label>
              {t('offer.quantity')}{' '}
              <input
                type="number"
                min="1"
                max="120"
                value={quantity}
                data-testid="quantity"
                onChange={(e) => setQuantity(Math.max(1, Number(e.target.value) || 1))}
              />
            </label>
          ) : null}
          <span data-testid="buy-summary">{summary}</span>{' '}
          <button type="button" onClick={buy} data-testid="buy" disabled={busy(tx)}>
            {t('offer.buy')}
          </button>
          <TxState state={tx} />
        </div>
      ) : (
        <p className="note">{t('offer.connectFirst')}</p>
      )}
    </li>
  )
}

function Facts({ model }) {
  const { t, lang } = useApp()
  const sameOwner = model.voice_owner.toLowerCase() === model.creator.toLowerCase()
  const share = model.voice_owner_bps ? ` — ${t('voice.ownerShare', { share: model.voice_owner_bps / 100 })}` : ''
  const link = (id, key) => (
    <div key={id}>
      <a href={`#/voice/${id}`}>{t(key, { id: short(id) })}</a>
    </div>
  )
  return (
    <dl className="facts">
      <dt>{t('voice.languages')}</dt>
      <dd>{model.languages.map((l) => LANGUAGES[l] || l).join(', ')}</dd>
      <dt>{t('voice.creator')}</dt>
      <dd className="address">{model.creator}</dd>
      <dt>{t('voice.owner')}</dt>
      <dd className="address">
        {model.voice_owner}
        {share}
      </dd>
      <dt>{t('voice.consent')}</dt>
      <dd>{model.consent_signed ? t('voice.consentSigned') : sameOwner ? t('voice.consentSelf') : '—'}</dd>
      <dt>{t('voice.status')}</dt>
      <dd>
        <Status item={model} />
      </dd>
      <dt>{t('voice.versions')}</dt>
      <dd>
        {!model.versions.parents.length && !model.versions.children.length && t('voice.noVersions')}
        {model.versions.parents.map((p) => link(p, 'voice.parent'))}
        {model.versions.children.map((c) => link(c, 'voice.child'))}
      </dd>
      <dt>{t('voice.uses')}</dt>
      <dd data-testid="uses">{model.uses}</dd>
      <dt>{t('voice.licences')}</dt>
      <dd>{model.licenses_sold}</dd>
      <dt>{t('voice.disputeWindow')}</dt>
      <dd>{periodWords(model.dispute_window, lang)}</dd>
      <dt>{t('voice.operators')}</dt>
      <dd>
        {model.operators
          .filter((o) => o.allowed)
          .map((o) => (
            <div key={o.operator}>
              <a href={`#/operator/${o.operator}`}>{short(o.operator)}</a>
              {o.allowed_until ? ` (→ ${fmtDate(o.allowed_until, lang)})` : ''}
            </div>
          ))}
      </dd>
    </dl>
  )
}

export function Voice({ id }) {
  const { t } = useApp()
  const [model, error, reload] = useApi(`/models/${id}`)
  if (!model) return <Loading error={error} />
  const offers = model.offers.filter((o) => o.active)
  return (
    <article className="voice" data-testid="voice-page">
      <h1>{model.name || short(model.model_id)}</h1>
      {model.metadata_error && <p className="error">{t('voice.metadataError', { error: model.metadata_error })}</p>}
      <p className="description">{model.description}</p>
      <PreviewPlayer modelId={model.model_id} cid={model.preview} />
      <Facts model={model} />
      <h2>{t('voice.offers')}</h2>
      {offers.length ? (
        <ul className="offers">
          {offers.map((o) => (
            <Offer key={o.offer_id} offer={o} onBought={reload} />
          ))}
        </ul>
      ) : (
        <p className="note">{t('voice.noOffers')}</p>
      )}
    </article>
  )
}
